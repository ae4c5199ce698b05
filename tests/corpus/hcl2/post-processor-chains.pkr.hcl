# kiln: valid
# packer-1.6.6: accept
# build: yes
# A post-processors chain and standalone post-processors, with names, only/except and
# keep_input_artifact.

source "file" "artifact" {
  target  = "out/artifact.txt"
  content = "payload\n"
}

source "null" "nothing" {
  communicator = "none"
}

build {
  sources = ["source.file.artifact", "source.null.nothing"]

  post-processors {
    post-processor "shell-local" {
      name                = "inspect"
      keep_input_artifact = true
      inline              = ["echo chain step one"]
    }
    post-processor "manifest" {
      output     = "out/chain-manifest.json"
      strip_path = true
    }
  }

  post-processor "shell-local" {
    only   = ["file.artifact"]
    inline = ["echo only for the file artifact"]
  }

  post-processor "shell-local" {
    except = ["file.artifact"]
    inline = ["echo everything but the file artifact"]
  }
}
