"""Website logo extraction: from a list of domains to one logo (and one icon) per domain.

One module per role:

- ``fetch``: the HTTP client — an aiohttp session whose resolver refuses non-public
  addresses, capped (decompressed) bodies, manual redirects checked hop by hop, robots.txt;
- ``candidates``: HTML, CSS and web-manifest signals → scored logo candidates;
- ``images``: a candidate's bytes → a usable logo image (decoded, rendered, judged);
- ``extract``: one domain end to end, and many domains on one asyncio loop;
- ``writer``: results → Parquet (a valid ``--source`` for build) and ``errors.jsonl``.

Failures are data: every domain ends ``ok`` or ``failed`` with a reason from
``extract.REASONS``; nothing here raises for a bad site.
"""
