# kiln: valid
# packer-1.6.6: accept
# build: yes
# Template directives: %{ if } and %{ for } inside strings, with strip markers.

variable "packages" {
  type    = list(string)
  default = ["curl", "git", "jq"]
}

variable "minimal" {
  type    = bool
  default = false
}

locals {
  install = "install %{ for p in var.packages }${p} %{ endfor ~}"
  kind    = "%{ if var.minimal }minimal%{ else }full%{ endif } image"
}

source "null" "directives" {
  communicator = "none"
}

build {
  sources = ["source.null.directives"]

  provisioner "shell-local" {
    inline = ["echo '${local.install}' '${local.kind}'"]
  }
}
