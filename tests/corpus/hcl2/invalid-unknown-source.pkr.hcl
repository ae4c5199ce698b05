# kiln: invalid: unknown source "null.exampel" (did you mean "null.example"?)
# packer-1.6.6: reject

source "null" "example" {
  communicator = "none"
}

build {
  sources = ["source.null.exampel"]
}
