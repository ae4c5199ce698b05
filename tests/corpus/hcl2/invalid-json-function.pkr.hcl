# kiln: invalid: user is a function of JSON templates; in an HCL2 template write var.NAME instead
# packer-1.6.6: reject
# The {{ }} functions that read template-wide values (user, template_dir, packer_version,
# build) belong to JSON templates; in HCL2 they are var.x, path.root, packer.version and
# build.ID. The others ({{timestamp}}, {{build_name}}...) still work in plugin settings.

variable "greeting" {
  default = "hello"
}

source "null" "json-functions" {
  communicator = "none"
}

build {
  sources = ["source.null.json-functions"]

  provisioner "shell-local" {
    inline = ["echo {{user `greeting`}} from {{build_name}}"]
  }
}
