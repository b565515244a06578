"""Reading and writing images (`images`) and the data sets built from them (`datasets`)."""
