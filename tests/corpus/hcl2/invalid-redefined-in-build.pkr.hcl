# kiln: invalid: "target" is already set in source "file" "base"
# packer-1.6.6: reject
# A source block inside build may add settings, not change them.

source "file" "base" {
  target  = "out/base.txt"
  content = "x"
}

build {
  source "source.file.base" {
    target = "out/other.txt"
  }
}
