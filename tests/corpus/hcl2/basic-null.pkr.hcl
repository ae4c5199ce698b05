# kiln: valid
# packer-1.6.6: accept
# build: yes
# The smallest useful HCL2 template: one null source, a shell-local provisioner and a
# manifest post-processor.

source "null" "basic" {
  communicator = "none"
}

build {
  sources = ["source.null.basic"]

  provisioner "shell-local" {
    inline = ["echo hello from ${source.name}"]
  }

  post-processor "manifest" {
    output     = "manifest-basic.json"
    strip_path = true
  }
}
