# kiln: valid
# packer-1.6.6: accept
# build: yes
# Two named build blocks over the same source: build names are <build>.<type>.<name>.

source "null" "shared" {
  communicator = "none"
}

build {
  name    = "dev"
  sources = ["source.null.shared"]

  provisioner "shell-local" {
    inline = ["echo dev build of ${source.name}"]
  }
}

build {
  name    = "prod"
  sources = ["source.null.shared"]

  provisioner "shell-local" {
    inline = ["echo prod build of ${source.name}"]
  }
}
