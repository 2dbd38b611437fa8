"""Lookup dcops_template: render role templates exactly as ansible.builtin.template does, cheaply.

The roles compare what a file should hold with what the host's probe read, on every run and
for every host, so rendering is on the hot path of an idempotent converge. The builtin
``template`` lookup deep-copies every variable of the host for each file it renders (its own
source calls that a FIXME); with the lab's inventory that copy was about two thirds of the
controller's CPU on a re-run of base.yml. This lookup renders with the same engine, search
path, template variables (``template_*``, ``ansible_managed``) and defaults (trim_blocks), but
layers the few added variables over a shallow copy: rendering never mutates variables.

Options: ``template_vars`` (dict, added to the variables of every file), as in the builtin.
"""

from __future__ import annotations

import os
from typing import Any

from ansible._internal._templating import _template_vars
from ansible._internal._templating._engine import TemplateOptions, TemplateOverrides
from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template

DOCUMENTATION = """
name: dcops_template
short_description: render templates like ansible.builtin.template, without deep-copying variables
description:
  - Returns the rendered text of each template file, found in the role's C(templates) folder.
  - Same engine, search path, C(template_*) variables, C(ansible_managed) and trim_blocks as the
    builtin lookup; the host's variables are shared, not deep-copied, for each file.
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


def _jinja_searchpath(variables: dict[str, Any], found: str) -> list[str]:
    """Where {% include %} looks: the file's folder, then each search path's templates/ and itself."""
    paths = [os.path.dirname(found)]
    for p in variables.get("ansible_search_path", []):
        paths += [os.path.join(p, "templates"), p]
    return paths


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        variables = variables or {}
        self.set_options(var_options=variables, direct=kwargs)
        extra = self.get_option("template_vars") or {}
        options = TemplateOptions(escape_backslashes=False, overrides=TemplateOverrides.from_kwargs({"trim_blocks": True}))
        rendered = []
        for term in terms:
            found = self.find_file_in_search_path(variables, "templates", term)
            if not found:
                raise AnsibleError(f"dcops_template: no template file {term!r} in the role's templates/ folder")
            source = trust_as_template(self._loader.get_text_file_contents(found))
            layer = dict(variables)  # shallow: the template engine never writes into variables
            layer.update(
                _template_vars.generate_ansible_template_vars(
                    path=term, fullpath=found, include_ansible_managed="ansible_managed" not in layer
                )
            )
            layer.update(extra)
            templar = self._templar.copy_with_new_env(available_variables=layer, searchpath=_jinja_searchpath(variables, found))
            rendered.append(templar._engine.template(source, options=options))
        return rendered
