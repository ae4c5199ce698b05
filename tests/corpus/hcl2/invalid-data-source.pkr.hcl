# kiln: invalid: data sources are not supported by Kiln
# packer-1.6.6: reject

data "amazon-ami" "ubuntu" {
  filters = {
    name = "ubuntu/images/*"
  }
  owners      = ["099720109477"]
  most_recent = true
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
