# kiln: valid
# packer-1.6.6: accept
# build: yes
# A template split over several files in one directory, with an auto-loaded var file.

variable "flavor" {
  type    = string
  default = "vanilla"
}

variable "scoops" {
  type    = number
  default = 1
}
