# kiln: invalid: variable "api_key" is not set
# packer-1.6.6: reject

variable "api_key" {
  type = string
}

source "null" "unset" {
  communicator = "none"
}

build {
  sources = ["source.null.unset"]

  provisioner "shell-local" {
    inline = ["echo ${var.api_key}"]
  }
}
