# kiln: valid
# packer-1.6.6: accept
# build: yes
# Locals computed with the function library, for expressions, conditionals, splats and
# indexing, as real templates name their images and tags.

variable "env" {
  type    = string
  default = "staging"
}

variable "regions" {
  type    = list(string)
  default = ["us-east-1", "eu-west-1", "ap-south-1"]
}

variable "tags" {
  type = map(string)
  default = {
    team = "platform"
    cost = "42"
  }
}

locals {
  upper_env    = upper(var.env)
  short        = substr(var.env, 0, 4)
  image_name   = format("%s-%s-%03d", "base", local.short, 7)
  region_list  = join(",", var.regions)
  first_region = element(var.regions, 0)
  region_count = length(var.regions)
  eu_regions   = [for r in var.regions : r if substr(r, 0, 3) == "eu-"]
  region_codes = { for r in var.regions : r => upper(split("-", r)[0]) }
  all_tags     = merge(var.tags, { env = var.env, name = local.image_name })
  tag_keys     = join(" ", keys(local.all_tags))
  is_prod      = var.env == "production" ? "yes" : "no"
  arithmetic   = (local.region_count * 10 + 2) / 2 - 1 % 3
  cleaned      = replace(regex_replace("a--b---c", "-+", "-"), "a", "A")
  encoded      = base64encode(jsonencode({ k = "v" }))
  padded       = trimspace("  x  ")
  objects      = [{ n = "a" }, { n = "b" }]
  names        = join("+", local.objects[*].n)
  maxed        = max(3, 9, 4)
  contains_eu  = contains(var.regions, "eu-west-1")
  lookup_cost  = lookup(var.tags, "cost", "0")
  sorted       = join(",", sort(["b", "c", "a"]))
}

source "null" "functions" {
  communicator = "none"
}

build {
  sources = ["source.null.functions"]

  provisioner "shell-local" {
    inline = [
      "echo env=${local.upper_env} name=${local.image_name}",
      "echo regions=${local.region_list} first=${local.first_region} count=${local.region_count}",
      "echo eu=${join(",", local.eu_regions)} code=${local.region_codes["ap-south-1"]}",
      "echo tags=${local.tag_keys} prod=${local.is_prod} n=${local.arithmetic}",
      "echo ${local.cleaned} ${local.encoded} [${local.padded}] ${local.names} ${local.maxed}",
      "echo ${local.contains_eu} ${local.lookup_cost} ${local.sorted}",
    ]
  }
}
