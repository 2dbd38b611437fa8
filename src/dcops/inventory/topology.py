"""The data network's tree, derived from the circuits — never from the administrative parent.

A province's administration (province → district → commune, or province → commune since the
2025 reform) says who answers to whom; the data network says which packets pass where. The
NOC's suppression (a site unreachable *because of* another), the WireGuard legs, the lab's
links and the validation's "no path to the data centre" all come from here:

- :meth:`Topology.upstream` — for every site, the sites on *every* path to the data centre
  (their loss cuts it off). A site with two paths through different sites has none.
- :meth:`Topology.upstream_circuits` — the circuits on every path (a cut of any of them cuts the
  site off). A site is dual-path when it has none: no single circuit or site cuts it off.
- :meth:`Topology.parents` — the neighbours one hop closer to the data centre (Nagios-style
  parents: a child is unreachable because of its parents only when all of them are down).
- :meth:`Topology.behind` — the sites that a site's loss cuts off.

Only sites on the data network (``datanet: true``) take part; distances are in hops, so the
tree does not change when an OSPF cost is tuned.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dcops.inventory.model import Inventory, Tier


@dataclass(frozen=True)
class Topology:
    """The circuits as an undirected graph rooted at the data centre."""

    root: str
    #: site -> its neighbours over circuits
    adjacency: Mapping[str, frozenset[str]]
    #: circuit name (``a--b``) -> its two ends
    circuits: Mapping[str, frozenset[str]]
    _cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, inv: Inventory) -> Topology:
        """The topology of a validated inventory (exactly one data centre)."""
        roots = [s.name for s in inv.sites if s.tier is Tier.DATACENTRE]
        if len(roots) != 1:
            raise ValueError(f"a province has exactly one data centre; found {len(roots)}")
        on_net = {s.name for s in inv.sites if s.datanet} | set(roots)
        adj: dict[str, set[str]] = {name: set() for name in on_net}
        circuits: dict[str, frozenset[str]] = {}
        for c in inv.circuits:
            if c.a in adj and c.b in adj and c.a != c.b:
                adj[c.a].add(c.b)
                adj[c.b].add(c.a)
                circuits[c.name] = frozenset((c.a, c.b))
        return cls(roots[0], {k: frozenset(v) for k, v in adj.items()}, circuits)

    @property
    def sites(self) -> list[str]:
        """Every site on the data network but the data centre, by name."""
        return sorted(n for n in self.adjacency if n != self.root)

    # --- reachability ------------------------------------------------------------------
    def reachable(self, without: Iterable[str] = (), cut: Iterable[str] = ()) -> set[str]:
        """The sites that reach the data centre with the sites ``without`` down and the circuits
        ``cut`` (by name) cut. The data centre itself is in the set (unless it is ``without``)."""
        down = set(without)
        cuts = {self.circuits[c] for c in cut if c in self.circuits}
        if self.root in down:
            return set()
        seen = {self.root}
        todo = deque([self.root])
        while todo:
            here = todo.popleft()
            for nxt in self.adjacency[here]:
                if nxt not in seen and nxt not in down and frozenset((here, nxt)) not in cuts:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def unreachable(self) -> list[str]:
        """Sites on the data network with no circuit path to the data centre."""
        ok = self.reachable()
        return [s for s in self.sites if s not in ok]

    def depth(self) -> dict[str, int]:
        """Hops from the data centre, for every reachable site."""
        out = {self.root: 0}
        todo = deque([self.root])
        while todo:
            here = todo.popleft()
            for nxt in sorted(self.adjacency[here]):
                if nxt not in out:
                    out[nxt] = out[here] + 1
                    todo.append(nxt)
        return out

    # --- the tree ------------------------------------------------------------------------
    def parents(self) -> dict[str, tuple[str, ...]]:
        """Each reachable site's neighbours one hop closer to the data centre (sorted)."""
        d = self.depth()
        return {
            s: tuple(sorted(n for n in self.adjacency[s] if n in d and d[n] == d[s] - 1))
            for s in self.sites
            if s in d
        }

    def upstream(self) -> dict[str, frozenset[str]]:
        """For each reachable site, the other sites on every one of its paths to the data centre
        (the data centre itself excluded): one of them down cuts the site off."""
        cached = self._cache.get("upstream")
        if cached is None:
            base = self.reachable()
            out: dict[str, set[str]] = {s: set() for s in self.sites if s in base}
            for v in self.sites:
                if v not in base:
                    continue
                cut_off = base - self.reachable(without=[v]) - {v}
                for s in cut_off:
                    out[s].add(v)
            cached = {s: frozenset(v) for s, v in out.items()}
            self._cache["upstream"] = cached
        assert isinstance(cached, dict)
        return cached

    def upstream_circuits(self) -> dict[str, frozenset[str]]:
        """For each reachable site, the circuits on every one of its paths to the data centre."""
        cached = self._cache.get("upstream_circuits")
        if cached is None:
            base = self.reachable()
            out: dict[str, set[str]] = {s: set() for s in self.sites if s in base}
            for name in self.circuits:
                for s in base - self.reachable(cut=[name]):
                    out[s].add(name)
            cached = {s: frozenset(v) for s, v in out.items()}
            self._cache["upstream_circuits"] = cached
        assert isinstance(cached, dict)
        return cached

    def dual_path(self) -> list[str]:
        """Sites that no single site or circuit cuts off (two independent paths)."""
        up, upc = self.upstream(), self.upstream_circuits()
        return [s for s in self.sites if s in up and not up[s] and not upc[s]]

    def behind(self, site: str) -> list[str]:
        """The sites that ``site``'s loss cuts off from the data centre (sorted)."""
        return sorted(s for s, up in self.upstream().items() if site in up)

    def path_neighbours(self, site: str) -> tuple[str, ...]:
        """The neighbours of ``site`` that reach the data centre without it: the first hops of its
        paths (a dual-path site has two or more; losing one of them loses redundancy)."""
        if site == self.root:
            return ()
        alive = self.reachable(without=[site])
        return tuple(sorted(n for n in self.adjacency[site] if n in alive))

    def aggregation_points(self) -> list[str]:
        """Sites that other sites reach the data centre through (aggregation points in fact)."""
        d = self.depth()
        return sorted({p for s, ps in self.parents().items() for p in ps if p != self.root and d.get(s, 0) > 1})
