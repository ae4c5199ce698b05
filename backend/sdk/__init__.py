"""The plugin SDK: everything a builder, provisioner, post-processor, communicator or data
source imports from Kiln (modelled on Packer's packer-plugin-sdk).

- ``plugin``: the interfaces (``Builder`` and its ``Step`` list, ``Provisioner``,
  ``PostProcessor``, ``DataSource``, ``Artifact``, ``PrepareContext``)
- ``errors``: ``StepError`` (a failure the user can act on) and ``Cancelled``
- ``context``: the ``BuildContext``, ``StageUI`` and ``ResourceLedger`` protocols
- ``cancel``: the ``CancelToken`` every blocking call polls
- ``communicator``: the ``Communicator`` interface and its output plumbing
- ``config``: declaring and decoding a plugin's configuration
- ``reaper``: what ``kiln cleanup`` calls for the resources a plugin records
- ``process``: the spawn lock and process identity for plugins that run local commands

Plugins are found through the ``kiln.plugins`` entry-point group (see ARCHITECTURE.md,
"Writing a plugin"). Nothing here imports the engine.
"""
