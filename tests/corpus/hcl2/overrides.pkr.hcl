# kiln: valid
# packer-1.6.6: accept
# build: yes
# A provisioner whose settings differ per source (override keys are source names).

source "null" "alpha" {
  communicator = "none"
}

source "null" "beta" {
  communicator = "none"
}

build {
  sources = ["source.null.alpha", "source.null.beta"]

  provisioner "shell-local" {
    inline = ["echo default settings"]
    override = {
      beta = {
        inline = ["echo overridden for beta"]
      }
    }
  }
}
