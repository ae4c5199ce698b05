# kiln: invalid: the data source type "hcp-packer-image" is a Packer plugin that Kiln does not implement
# packer-1.6.6: reject

data "hcp-packer-image" "base" {
  bucket_name = "golden"
  channel     = "production"
}

source "null" "data" {
  communicator = "none"
}

build {
  sources = ["source.null.data"]

  provisioner "shell-local" {
    inline = ["echo ${data.hcp-packer-image.base.id}"]
  }
}
