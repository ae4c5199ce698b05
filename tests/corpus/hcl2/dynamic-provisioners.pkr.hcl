# kiln: valid
# packer-1.6.6: accept
# build: yes
# dynamic provisioner blocks between static ones: everything runs in file order.

variable "steps" {
  type    = list(string)
  default = ["two", "three"]
}

source "null" "dynamic" {
  communicator = "none"
}

build {
  sources = ["source.null.dynamic"]

  provisioner "shell-local" {
    inline = ["echo one"]
  }

  dynamic "provisioner" {
    for_each = var.steps
    labels   = ["shell-local"]
    content {
      inline = ["echo ${provisioner.value} step ${provisioner.key}"]
    }
  }

  provisioner "shell-local" {
    inline = ["echo four"]
  }

  dynamic "provisioner" {
    for_each = { five = "5", six = "6" }
    iterator = step
    labels   = ["shell-local"]
    content {
      inline = ["echo ${step.key}=${step.value}"]
    }
  }
}
