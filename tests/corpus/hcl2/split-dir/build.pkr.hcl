build {
  sources = ["source.null.cone", "source.null.cup"]

  provisioner "shell-local" {
    inline = ["echo ${var.scoops} scoops of ${var.flavor} in a ${source.name}"]
  }
}
