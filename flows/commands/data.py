"""Sales data, the registry's schema and the signing key: generate, ingest, db upgrade, keys."""

from __future__ import annotations

from pathlib import Path

from flows.output import user
from storage.catalog import get_catalog


def generate(args) -> None:
    from storage.synthetic import generate_sales, parse_shift, write_sales_csv

    shifts = tuple(parse_shift(text) for text in args.shift)
    sales = generate_sales(stores=args.stores, items=args.items, start=args.start, end=args.end,
                           seed=args.seed, shifts=shifts, zero_share=args.zero_share,
                           dispersion=args.dispersion)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_sales_csv(sales, args.out)
    print(f"wrote {len(sales):,} rows ({args.stores} stores x {args.items} items, "
          f"{args.start}..{args.end}) to {args.out}")


def ingest(args) -> None:
    import datetime as dt

    from monitoring.demand import PROFILE_DAYS, profile_sales
    from storage.ingest import describe_ingest, ingest_file
    from storage.sales import load_sales, sales_date_range

    catalog = get_catalog()
    print(describe_ingest(ingest_file(catalog, args.file, replace=args.replace)))
    with catalog.session() as session:  # the stored series as they stand now, last year
        _, newest = sales_date_range(session)
        recent = load_sales(session, start=newest - dt.timedelta(days=PROFILE_DAYS - 1))
    print(f"demand: {profile_sales(recent).statement()}")


def db_upgrade(args) -> None:
    from storage.db import current_revision, upgrade

    engine = get_catalog().raw_engine()
    before = current_revision(engine)
    upgrade(engine)
    print(f"database at revision {current_revision(engine)} (was {before or 'empty'})")


def keys_init(args) -> None:
    from storage.channel import init_signing_key

    catalog = get_catalog()
    public, key_id = init_signing_key(catalog.signing_key, force=args.force)
    print(f"release signing key {key_id}: private {catalog.signing_key} (keep it here), "
          f"public {public} (give it to every device: shelfcast-device trust --public-key)")


def keys_rotate(args) -> None:
    from storage.channel import rotate_signing_key
    from storage.models import utcnow
    from storage.releases import ReleaseTarget, resign_open_releases

    catalog = get_catalog()
    target = ReleaseTarget.from_settings(catalog.settings)
    old_key = target.load_signing_key()  # refused inside the release folder, like any signing
    with catalog.unit_of_work() as session:
        public, old_id, new_id = rotate_signing_key(target.signing_key, target.root, old_key,
                                                    now=utcnow().isoformat(), by=user(args.by))
        resigned = resign_open_releases(session, target)
    print(f"release signing key {new_id} replaces {old_id}: announced in "
          f"{target.root / 'keys.json'} (signed by {old_id}; devices that trust it learn the new "
          f"key at their next sync); {len(resigned)} open release manifest(s) and the indexes "
          f"re-signed; new public key {public}")
