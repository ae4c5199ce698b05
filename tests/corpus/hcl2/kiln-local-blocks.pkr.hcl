# kiln: valid
# packer-1.6.6: newer (local blocks and sensitive() came with Packer 1.7)
# build: yes
# local blocks with sensitive values, functions newer than Packer 1.6.6, try(), and
# source.name/source.type inside a source block.

variable "token" {
  type    = string
  default = "tok-1234567890"
}

local "auth_header" {
  expression = "Bearer ${var.token}"
  sensitive  = true
}

locals {
  matches  = regexall("[0-9]+", var.token)
  parts    = try(regex("^(?P<prefix>[a-z]+)-", var.token), { prefix = "none" })
  stamp    = legacy_isotime("2006-01-02")
  as_text  = tostring(42)
  password = sensitive("p@ss-word-value")
}

source "null" "kiln" {
  communicator = "none"
}

source "file" "named" {
  target  = "out/${source.type}-${source.name}.txt"
  content = "${source.name} ${packer.version}\n"
}

build {
  sources = ["source.null.kiln", "source.file.named"]

  provisioner "shell-local" {
    inline = [
      "echo header: ${local.auth_header}",
      "echo ${join(",", local.matches)} ${local.parts.prefix} ${local.as_text} ${local.password}",
    ]
  }
}
