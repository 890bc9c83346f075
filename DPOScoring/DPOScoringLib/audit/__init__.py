"""What a case leaves for the record: case run, bundle, report (+ template), batch, DICOM SEG/SR."""
