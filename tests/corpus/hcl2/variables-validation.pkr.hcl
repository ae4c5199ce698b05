# kiln: valid
# packer-1.6.6: accept
# build: yes
# Typed variables with descriptions, sensitive values and validation blocks.

variable "instance_count" {
  type        = number
  default     = 2
  description = "How many instances."

  validation {
    condition     = var.instance_count > 0 && var.instance_count < 10
    error_message = "The instance_count must be between 1 and 9."
  }
}

variable "enable_debug" {
  type    = bool
  default = false
}

variable "owner" {
  type    = string
  default = "ops@example.com"

  validation {
    condition     = length(split("@", var.owner)) == 2
    error_message = "The owner must be an email address."
  }
}

variable "settings" {
  type = object({
    size = number
    name = string
  })
  default = {
    size = 10
    name = "disk"
  }
}

variable "password" {
  type      = string
  default   = "hunter2-very-secret"
  sensitive = true
}

source "null" "validated" {
  communicator = "none"
}

build {
  sources = ["source.null.validated"]

  provisioner "shell-local" {
    inline = [
      "echo count=${var.instance_count} debug=${var.enable_debug} owner=${var.owner}",
      "echo disk=${var.settings.name}:${var.settings.size}",
      "echo password has ${length(var.password)} characters",
    ]
  }
}
