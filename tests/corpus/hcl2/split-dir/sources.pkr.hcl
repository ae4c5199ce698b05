source "null" "cone" {
  communicator = "none"
}

source "null" "cup" {
  communicator = "none"
}
