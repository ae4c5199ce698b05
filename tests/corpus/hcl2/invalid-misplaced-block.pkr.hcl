# kiln: invalid: unknown block type "provisioner"; it belongs inside a build block
# packer-1.6.6: reject

source "null" "misplaced" {
  communicator = "none"
}

provisioner "shell-local" {
  inline = ["echo outside of build"]
}

build {
  sources = ["source.null.misplaced"]
}
