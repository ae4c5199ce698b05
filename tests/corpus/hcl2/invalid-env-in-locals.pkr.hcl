# kiln: invalid: env() can only be used in the default of a variable
# packer-1.6.6: reject

locals {
  home = env("HOME")
}

source "null" "env" {
  communicator = "none"
}

build {
  sources = ["source.null.env"]

  provisioner "shell-local" {
    inline = ["echo ${local.home}"]
  }
}
