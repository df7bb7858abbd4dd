"""Reading records: the terminal summaries of a folder of runs (``summary``), where records are
found (``record_sources``), asv's own results (``asv_results``), the change against another
commit (``changes``), AlgoPerf's performance profiles (``performance_profiles``) and the
figures of the HTML page (``figures``).
"""

LAYER = 6
