# kiln: valid
# packer-1.6.6: accept
# build: yes
# Heredocs, plain and indented, with interpolation; the trailing newline is kept.

variable "user" {
  type    = string
  default = "builder"
}

locals {
  motd = <<EOT
Welcome, ${var.user}!
This image was built by Kiln.
EOT

  script = <<-EOS
    set -e
    echo "indented heredoc for ${var.user}"
      echo "a deeper line keeps its extra indent"
    EOS
}

source "file" "motd" {
  target  = "out/motd.txt"
  content = local.motd
}

build {
  sources = ["source.file.motd"]

  provisioner "shell-local" {
    inline = [local.script]
  }

  provisioner "shell-local" {
    inline = [
      <<-EOF
      echo "inline heredoc"
      cat out/motd.txt
      EOF
    ]
  }
}
