# kiln: valid
# packer-1.6.6: newer (required_plugins came with Packer 1.7)
# build: yes
# packer { required_plugins } is read and reported; nothing is downloaded.

packer {
  required_version = ">= 1.7.0, < 2.0.0"
  required_plugins {
    docker = {
      version = ">= 1.0.0"
      source  = "github.com/hashicorp/docker"
    }
  }
}

source "null" "plugins" {
  communicator = "none"
}

build {
  sources = ["source.null.plugins"]

  provisioner "shell-local" {
    inline = ["echo packer ${packer.version}"]
  }
}
