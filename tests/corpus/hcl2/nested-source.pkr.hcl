# kiln: valid
# packer-1.6.6: accept
# build: yes
# A source used twice: once as is, once renamed and completed inside the build block.

source "file" "base" {
  content = "same content, two files\n"
}

build {
  source "source.file.base" {
    name   = "first"
    target = "out/first.txt"
  }

  source "file.base" {
    name   = "second"
    target = "out/second.txt"
  }

  provisioner "shell-local" {
    inline = ["echo building ${source.name}"]
  }

  provisioner "shell-local" {
    only   = ["file.second"]
    inline = ["echo only the renamed second one"]
  }
}
