"""Lookup dcops_template: render role templates exactly as ansible.builtin.template writes them.

The rendering itself is :func:`dcops.ansible_plugins.templating.render_template` (public
ansible-core API only; the same function the dcops_probe action uses), so a file compared here
is the file the template module would install.

Options: ``template_vars`` (dict, added to the variables of every file), as in the builtin.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from dcops.ansible_plugins.templating import TemplatingError, render_template

DOCUMENTATION = """
name: dcops_template
short_description: render templates like ansible.builtin.template, without deep-copying variables
description:
  - Returns the rendered text of each template file, found in the role's C(templates) folder.
  - Same engine, search path, C(template_*) variables, C(ansible_managed) and trim_blocks as the
    template module; the host's variables are shared, not deep-copied, for each file.
options:
  _terms:
    description: template file names
    required: true
  template_vars:
    description: extra variables for the templates
    type: dict
    default: {}
"""

RETURN = """
_raw:
  description: rendered text of each file
  type: list
  elements: str
"""


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        variables = variables or {}
        self.set_options(var_options=variables, direct=kwargs)
        extra = self.get_option("template_vars") or {}
        rendered = []
        for term in terms:
            found = self.find_file_in_search_path(variables, "templates", term)
            if not found:
                raise AnsibleError(f"dcops_template: no template file {term!r} in the role's templates/ folder")
            try:
                rendered.append(render_template(self._templar, self._loader, variables, found, name=term, extra=extra))
            except TemplatingError as e:
                raise AnsibleError(str(e)) from None
        return rendered
