# kiln: valid
# packer-1.6.6: accept
# build: yes
# Several sources in one named build, provisioners restricted with only/except, the way
# image projects build one image per platform.

variable "release" {
  type    = string
  default = "1.2.3"
}

source "null" "ubuntu" {
  communicator = "none"
}

source "null" "debian" {
  communicator = "none"
}

source "file" "notes" {
  target  = "out/notes-${var.release}.txt"
  content = "release ${var.release}\n"
}

build {
  name        = "platforms"
  description = "One build per platform."
  sources     = ["source.null.ubuntu", "null.debian", "source.file.notes"]

  provisioner "shell-local" {
    inline = ["echo common step for ${source.type}.${source.name}"]
  }

  provisioner "shell-local" {
    only   = ["null.ubuntu"]
    inline = ["echo apt-get on ubuntu"]
  }

  provisioner "shell-local" {
    except = ["null.ubuntu", "file.notes"]
    inline = ["echo not on ubuntu nor the notes"]
  }
}
