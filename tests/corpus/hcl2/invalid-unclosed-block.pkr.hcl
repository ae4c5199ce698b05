# kiln: invalid: this block is not closed
# packer-1.6.6: reject

source "null" "unclosed" {
  communicator = "none"
}

build {
  sources = ["source.null.unclosed"]

  provisioner "shell-local" {
    inline = ["echo never closed"]
  }
