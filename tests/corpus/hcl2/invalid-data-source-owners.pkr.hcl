# kiln: invalid: owners must name who publishes the AMI
# packer-1.6.6: reject

data "amazon-ami" "ubuntu" {
  filters = {
    name = "ubuntu/images/*"
  }
  most_recent = true
  region      = "us-east-1"
}

source "null" "data" {
  communicator = "none"
}

build {
  sources = ["source.null.data"]

  provisioner "shell-local" {
    inline = ["echo ${data.amazon-ami.ubuntu.id}"]
  }
}
