-- Leave room in each page for the updated versions of its rows: an update that changes no
-- indexed column (an executor recording that it holds a job, or that its report is out) can
-- then stay on the page without touching any index (a HOT update).
ALTER TABLE jobs SET (fillfactor = 70);
