# kiln: valid
# packer-1.6.6: newer (error-cleanup-provisioner in HCL2 came with Packer 1.7)
# build: yes
# An error-cleanup provisioner and provisioner retries, names and timeouts.

source "null" "cleanup" {
  communicator = "none"
}

build {
  sources = ["source.null.cleanup"]

  provisioner "shell-local" {
    name         = "first step"
    pause_before = "1ms"
    max_retries  = 1
    timeout      = "30s"
    inline       = ["echo provisioning"]
  }

  error-cleanup-provisioner "shell-local" {
    inline = ["echo cleaning up after a failure"]
  }
}
