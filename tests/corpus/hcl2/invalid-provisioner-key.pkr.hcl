# kiln: invalid: unknown configuration key "inlin" (did you mean "inline"?)
# packer-1.6.6: reject

source "null" "key" {
  communicator = "none"
}

build {
  sources = ["source.null.key"]

  provisioner "shell-local" {
    inlin = ["echo typo"]
  }
}
