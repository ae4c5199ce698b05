# kiln: valid
# packer-1.6.6: accept
# build: yes
# Sources but no build block: nothing to build. Packer accepts it and exits 0; Kiln too,
# with a warning.

source "null" "unused" {
  communicator = "none"
}
