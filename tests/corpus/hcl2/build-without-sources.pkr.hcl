# kiln: valid
# packer-1.6.6: accept
# build: yes
# A build block that names no source builds nothing: Packer accepts it and exits 0, and so
# does Kiln, with a warning. The other build block still builds.

source "null" "used" {
  communicator = "none"
}

build {
  provisioner "shell-local" {
    inline = ["echo never runs"]
  }
}

build {
  sources = ["source.null.used"]

  provisioner "shell-local" {
    inline = ["echo built"]
  }
}
