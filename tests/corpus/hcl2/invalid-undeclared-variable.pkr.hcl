# kiln: invalid: there is no variable named "regoin" (did you mean "region"?)
# packer-1.6.6: reject

variable "region" {
  type    = string
  default = "us-east-1"
}

source "null" "undeclared" {
  communicator = "none"
}

build {
  sources = ["source.null.undeclared"]

  provisioner "shell-local" {
    inline = ["echo ${var.regoin}"]
  }
}
