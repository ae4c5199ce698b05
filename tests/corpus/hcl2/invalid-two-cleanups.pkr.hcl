# kiln: invalid: a build block may have only one error-cleanup-provisioner
# packer-1.6.6: reject (no error-cleanup-provisioner in Packer 1.6.6 HCL2)

source "null" "cleanups" {
  communicator = "none"
}

build {
  sources = ["source.null.cleanups"]

  error-cleanup-provisioner "shell-local" {
    inline = ["echo one"]
  }

  error-cleanup-provisioner "shell-local" {
    inline = ["echo two"]
  }
}
