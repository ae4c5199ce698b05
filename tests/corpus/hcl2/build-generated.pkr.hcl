# kiln: valid
# packer-1.6.6: accept
# build: yes
# Generated values (build.ID, build.PackerRunUUID) are filled in when the provisioner runs.

source "null" "generated" {
  communicator = "none"
}

build {
  sources = ["source.null.generated"]

  provisioner "shell-local" {
    inline = ["echo id=${build.ID}", "test -n '${build.PackerRunUUID}' && echo has a run uuid"]
  }

  provisioner "shell-local" {
    environment_vars = ["RUN=${build.PackerRunUUID}"]
    execute_command  = ["/bin/sh", "-c", "{{.Vars}} /bin/sh {{.Script}}"]
    inline           = ["echo run from the environment: $${#RUN} characters"]
  }
}
