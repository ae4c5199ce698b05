# kiln: valid
# packer-1.6.6: newer (data sources came with Packer 1.7)
# build: yes
# A data source feeding a local and a provisioner; the null data source gives back its input.

variable "greeting" {
  type    = string
  default = "hello"
}

data "null" "message" {
  input = "${var.greeting} from a data source"
}

locals {
  shout = upper(data.null.message.output)
}

source "null" "data" {
  communicator = "none"
}

build {
  sources = ["source.null.data"]

  provisioner "shell-local" {
    inline = ["echo '${data.null.message.output}'", "echo '${local.shout}'"]
  }
}
