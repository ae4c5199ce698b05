# kiln: invalid: unknown function "lowercase"
# packer-1.6.6: reject
# An unknown function is a located error.

source "null" "fn" {
  communicator = "none"
}

build {
  sources = ["source.null.fn"]

  provisioner "shell-local" {
    inline = ["echo ${lowercase("ABC")}"]
  }
}
