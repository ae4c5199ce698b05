# kiln: invalid: valid_exit_codes: expected a list, got string
# packer-1.6.6: reject
# A list setting given a string: JSON templates split it at commas, HCL2 converts values by
# type and rejects it (as Packer does).

source "null" "lists" {
  communicator = "none"
}

build {
  sources = ["source.null.lists"]

  provisioner "shell-local" {
    inline           = ["exit 3"]
    valid_exit_codes = "0,3"
  }
}
