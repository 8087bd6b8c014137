"""python -m custlist.testing [--port P]: serve the sandbox until Ctrl-C."""
import argparse
import sys
import time

from .sandbox import Sandbox


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m custlist.testing")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--customers", type=int, default=500, help="data set size per endpoint")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    n = args.customers
    with Sandbox(pyng_customers=n, natural_customers=n, natural_invitations=n,
                 commenda_customers=n, seed=args.seed, port=args.port) as sb:
        print(f"custlist sandbox on {sb.url}")
        print(f"  Pyng     base_url={sb.pyng_url}  token={sb.pyng_token}")
        print(f"           client_id={sb.pyng_client_id} client_secret={sb.pyng_client_secret}")
        print(f"  Natural  base_url={sb.natural_url}  token={sb.natural_token}")
        print(f"  Commenda base_url={sb.commenda_url}  token={sb.commenda_token}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
