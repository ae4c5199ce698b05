# kiln: invalid: unknown argument "descripton" in variable "a"
# packer-1.6.6: reject
# Several problems in one file are all reported at once.

variable "a" {
  type       = string
  descripton = "typo"
}

locals {
  b = upper(1, 2)
  c = [1, 2][5]
}

source "null" "many" {
  communicator = "none"
}

build {
  sources = ["source.null.many"]
}
