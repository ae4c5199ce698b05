# A Kiln HCL2 example that builds offline: the null builder (no machine), shell-local
# provisioners and a manifest post-processor.
#
#   kiln validate templates/hcl2-null.pkr.hcl
#   kiln build -var 'greeting=hi' templates/hcl2-null.pkr.hcl

packer {
  required_version = ">= 1.7.0"
}

variable "greeting" {
  type        = string
  default     = "hello"
  description = "What the provisioner says."

  validation {
    condition     = length(var.greeting) > 0 && length(var.greeting) <= 40
    error_message = "The greeting must be 1 to 40 characters long."
  }
}

variable "flavors" {
  type    = list(string)
  default = ["vanilla", "chocolate"]

  validation {
    condition     = length(var.flavors) > 0
    error_message = "Give at least one flavor."
  }
}

variable "api_token" {
  type      = string
  default   = "not-a-real-token"
  sensitive = true
}

locals {
  stamp     = formatdate("YYYYMMDD", timestamp())
  out_dir   = "build"
  flavor_sh = join(" ", [for f in var.flavors : upper(f)])
}

source "null" "first" {
  communicator = "none"
}

source "null" "second" {
  communicator = "none"
}

build {
  name        = "demo"
  description = "Two null builds running the same shell-local provisioners."

  sources = ["source.null.first", "source.null.second"]

  provisioner "shell-local" {
    inline = [
      "mkdir -p ${local.out_dir}",
      "echo '${var.greeting} from ${source.name} (${source.type}), build ${build.name}'",
      "echo 'flavors: ${local.flavor_sh}'",
    ]
  }

  provisioner "shell-local" {
    only   = ["null.second"]
    inline = ["echo 'only on the second build; the token is ${var.api_token}'"]
  }

  provisioner "shell-local" {
    environment_vars = ["STAMP=${local.stamp}"]
    inline = [
      <<-EOT
      echo "built on $STAMP by ${build.PackerRunUUID}"
      EOT
    ]
  }

  post-processor "manifest" {
    output     = "${local.out_dir}/hcl2-null-manifest.json"
    strip_path = true
  }
}
