# kiln: valid
# packer-1.6.6: accept
# build: yes
# A source renamed inside the build block answers to its new name only: provisioners' and
# post-processors' only/except, -only/-except and the build's name use it; the manifest and
# PACKER_BUILD_NAME keep the source's own name, as Packer 1.6.6 does.

source "null" "base" {
  communicator = "none"
}

build {
  source "null.base" {
    name = "renamed"
  }

  provisioner "shell-local" {
    inline = ["echo all: $PACKER_BUILD_NAME ${source.name}"]
  }

  provisioner "shell-local" {
    only   = ["null.renamed"]
    inline = ["echo only the new name"]
  }

  provisioner "shell-local" {
    only   = ["null.base"]
    inline = ["echo only the old name"]
  }

  provisioner "shell-local" {
    except = ["null.base"]
    inline = ["echo except the old name"]
  }

  provisioner "shell-local" {
    except = ["null.renamed"]
    inline = ["echo except the new name"]
  }

  post-processor "manifest" {
    output     = "renamed-manifest.json"
    strip_time = true
  }

  post-processor "shell-local" {
    only   = ["null.base"]
    inline = ["echo pp only the old name"]
  }

  post-processor "shell-local" {
    except = ["null.base"]
    inline = ["echo pp except the old name: $PACKER_BUILD_NAME"]
  }
}
