from datetime import date

from ml_assets.runs import model_weeks


def test_model_weeks_are_the_last_whole_weeks_with_a_whole_training_window():
    # 2013-12-30 starts a week that ends in 2014: the last whole week is 2013-12-23..29
    assert model_weeks(date(2013, 1, 1), date(2013, 12, 31), 2, 13) == ["2013-12-16", "2013-12-23"]
    # the window of the week of 2013-04-01 starts 2012-12-31, before the data
    assert model_weeks(date(2013, 1, 1), date(2013, 4, 14), 3, 13) == ["2013-04-08"]
    assert model_weeks(date(2013, 1, 1), date(2013, 2, 28), 2, 13) == []
