# The original HTM Engine README's "Post-processing the results" program; only
# `nta.utils` -> `nta_utils` and `print` made a function (`print x,` -> `print(x, end=" ")`;
# the last line's unbalanced `)))` dropped). The README uses `os` without importing it:
# run_readme_program.py provides it.
import calendar
from htmengine import repository
from htmengine.repository import schema
from nta_utils.config import Config

METRIC_NAME = "foo.bar.stats"

appConfig = Config("application.conf", os.environ["APPLICATION_CONFIG_PATH"])

with repository.engineFactory(appConfig).connect() as conn:
  metricObj = repository.getCustomMetricByName(conn,
                                               METRIC_NAME,
                                               fields=[schema.metric.c.uid])

  fields = (schema.metric_data.c.metric_value,
            schema.metric_data.c.timestamp,
            schema.metric_data.c.rowid,
            schema.metric_data.c.anomaly_score)
  sort = schema.metric_data.c.timestamp.asc()

  result = repository.getMetricData(conn,
                                    metricId=metricObj.uid,
                                    fields=fields,
                                    sort=sort)

  for row in result:
    print(METRIC_NAME, end=" ")
    print(str(row.metric_value), end=" ")
    print(str(calendar.timegm(row.timestamp.timetuple())), end=" ")
    print(str(row.anomaly_score))
