# kiln: invalid: variable "name" is declared twice
# packer-1.6.6: reject

variable "name" {
  default = "a"
}

variable "name" {
  default = "b"
}

source "null" "dup" {
  communicator = "none"
}

build {
  sources = ["source.null.dup"]
}
