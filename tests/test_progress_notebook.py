"""progress=True in Jupyter: the bar is a widget, and the text it leaves in
the notebook (what a notebook saved without widget state shows, and what
nbconvert prints) is the final count, not the "0 records" it began with.
A real kernel runs the cell (nbclient), in a subprocess with a deadline."""
import json
import subprocess
import sys
import textwrap

from custlist.testing import Sandbox

SCRIPT = textwrap.dedent('''
    import json, sys
    import nbclient, nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(sys.argv[1])]
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    print(json.dumps([{"type": out.output_type, "text": out.get("data", {}).get("text/plain"),
                       "widget": "application/vnd.jupyter.widget-view+json" in out.get("data", {})}
                      for out in nb.cells[0].outputs]))
''')


def test_a_notebook_keeps_the_final_count_of_each_bar():
    with Sandbox(natural_customers=130, commenda_customers=90, seed=5) as sb:
        cell = textwrap.dedent(f'''
            import custlist
            nat = custlist.Natural({sb.natural_token!r}, base_url={sb.natural_url!r})
            cm = custlist.Commenda({sb.commenda_token!r}, base_url={sb.commenda_url!r})
            rows = list(nat.customers(limit=20, progress=True))          # no total from the API
            df = cm.customers("corp_123", limit=20, progress=True).to_pandas()   # a total
            print(len(rows), len(df))
        ''')
        r = subprocess.run([sys.executable, "-c", SCRIPT, cell], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr[-3000:]
        outputs = json.loads(r.stdout)
    bars = [o for o in outputs if o["widget"]]
    assert len(bars) == 2, outputs
    assert bars[0]["text"].startswith("natural.customers: 130 records [")
    assert bars[1]["text"].startswith("commenda.customers: 100%") and "| 90/90 [" in bars[1]["text"]
