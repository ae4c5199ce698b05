# kiln: invalid: the default of variable "port" is not a number
# packer-1.6.6: reject

variable "port" {
  type    = number
  default = "twenty-two"
}

source "null" "types" {
  communicator = "none"
}

build {
  sources = ["source.null.types"]
}
