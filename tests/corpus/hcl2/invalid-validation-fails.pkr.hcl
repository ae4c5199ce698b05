# kiln: invalid: invalid value for variable "size": The size must be even.
# packer-1.6.6: reject

variable "size" {
  type    = number
  default = 3

  validation {
    condition     = var.size % 2 == 0
    error_message = "The size must be even."
  }
}

source "null" "validation" {
  communicator = "none"
}

build {
  sources = ["source.null.validation"]
}
