"""Flowers of the example's dataset, shared by its engine tests."""

# Rows 1, 51 and 101 of data/iris.csv: one flower of each species, in the order of the model's classes.
SETOSA, VERSICOLOR, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]
