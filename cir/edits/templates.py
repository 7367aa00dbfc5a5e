"""Hand-written sentence templates for the edit tagger's training data, one clause pattern per line.

Slots (filled by :mod:`cir.edits.generate` with objects from :mod:`cir.edits.vocabulary`):

    {+:a}    objects to ADD, each with an indefinite determiner ("a laptop and an owl")
    {+:bare} objects to ADD, no determiner ("laptops" style: "with laptop or owl")
    {-:the}  objects to REMOVE, each with a definite determiner ("the cup and the saucer")
    {-:bare} objects to REMOVE, no determiner ("no cup or saucer")
    {=:the}  a context object, neither added nor removed ("next to the lamp")
    {=:a}    a context object with an indefinite determiner
A digit after the sign ("{+1:a}") asks for exactly one object. A pattern that starts with "!" is imperative (it
accepts politeness prefixes such as "could you"); the others are declarative or elliptical. The kind of a pattern
is the section it is listed in. Patterns are split into train and validation sets by :func:`split_patterns`, so
validation sentences are built from phrasings the tagger never saw.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

KINDS = ("add", "remove", "replace", "multi", "context", "negation", "none", "foreign")
SLOT_RE = re.compile(r"\{([+\-=])(1?):(a|the|bare)\}")

_ADD = r"""
!add {+:a}
!add {+:a} to it
!add {+:a} to the picture
!add {+:a} to the scene
!add {+:a} to the image
!add in {+:a}
!add {+:a} as well
!add {+:a} too
!also add {+:a}
!now add {+:a}
!just add {+:a}
!put {+:a} in
!put in {+:a}
!put {+:a} in the picture
!put {+:a} in there
!put {+:a} somewhere
!include {+:a}
!include {+:a} too
!insert {+:a}
!insert {+:a} into the image
!place {+:a} in the scene
!place {+:a} somewhere
!bring in {+:a}
!bring {+:a} into the picture
!throw in {+:a}
!toss in {+:a}
!stick {+:a} in there
!pop {+:a} in
!drop in {+:a}
!slip in {+:a}
!show {+:a} as well
!also show {+:a}
!show me {+:a} too
!give it {+:a}
!give the scene {+:a}
!draw {+:a} in
!paint in {+:a}
!sneak in {+:a}
!squeeze in {+:a}
!fit {+:a} in
!make sure there is {+:a}
!make it have {+:a}
!let there be {+:a}
!let's have {+:a}
!let's add {+:a}
!go ahead and add {+:a}
!try adding {+:a}
!try it with {+:a}
!show the same thing with {+:a}
!show this with {+:a} added
!complete it with {+:a}
!decorate it with {+:a}
!fill the gap with {+:a}
!introduce {+:a}
!append {+:a}
!attach {+:a}
!add on {+:a}
!tack on {+:a}
!supplement it with {+:a}
!add {+:a} into the mix
!add {+:a} in the corner
!add {+:a} on the side
!add {+:a} at the back
!stick {+:a} somewhere in the frame
!include {+:a} in the shot
!get {+:a} in there
!get me {+:a} in this picture
!bring {+:a} in
!put {+:a} on the table
!place {+:a} on the floor
!add a picture of {+:a}
!also include {+:a}
!add {+:a} please
!add {+:a} as an extra
with {+:a}
with {+:a} added
with {+:a} too
with {+:a} as well
now with {+:a}
plus {+:a}
and {+:a}
and also {+:a}
also {+:a}
same but with {+:a}
same but with {+:a} too
same picture but with {+:a}
same image plus {+:a}
same scene with {+:a} added
the same with {+:a}
the same plus {+:a}
the same thing but also {+:a}
this but with {+:a}
this plus {+:a}
this one with {+:a} added
like this but with {+:a}
just like this with {+:a}
exactly this plus {+:a}
{+:a} added
{+:a} added to it
{+:a} too
{+:a} as well
{+:a} should be added
{+:a} should also be there
{+:a} should appear
{+:a} needs to be added
{+:a} needs to be in it
{+:a} must be in the picture
{+:a} would be nice
{+:a} would be great
{+:a} would fit well
{+:a} belongs in the picture
there should be {+:a}
there should also be {+:a}
there needs to be {+:a}
there must be {+:a}
there has to be {+:a}
there is {+:a} now
there is also {+:a}
there ought to be {+:a}
i want {+:a}
i want {+:a} too
i want {+:a} in it
i want to see {+:a}
i would like {+:a}
i'd like {+:a}
i'd like to see {+:a}
i'd like {+:a} added
i would love {+:a}
i'd love to see {+:a} in it
i need {+:a}
i need {+:a} in the picture
i also need {+:a}
i'm looking for the same with {+:a}
i'm missing {+:a}
we need {+:a}
we want {+:a} in there
it needs {+:a}
it needs {+:a} too
it should have {+:a}
it should also have {+:a}
it should include {+:a}
it must have {+:a}
it has to have {+:a}
it is missing {+:a}
it's missing {+:a}
it lacks {+:a}
it could use {+:a}
it would look better with {+:a}
the picture needs {+:a}
the scene should contain {+:a}
the image should show {+:a}
the image is missing {+:a}
the scene lacks {+:a}
this needs {+:a}
this should have {+:a}
show {+:a} too
also showing {+:a}
now also showing {+:a}
featuring {+:a}
now featuring {+:a}
including {+:a}
containing {+:a} too
along with {+:a}
together with {+:a}
alongside {+:a}
accompanied by {+:a}
complete with {+:a}
an extra {+:bare}
one more {+:bare}
add-on: {+:a}
adding {+:a}
adding {+:a} to the scene
addition of {+:a}
with the addition of {+:a}
more: {+:a}
extra {+:bare}
can you add {+:a}
could you add {+:a}
can we add {+:a}
can we have {+:a}
can we get {+:a} in there
could we have {+:a}
could there be {+:a}
can there be {+:a} too
can i have {+:a}
could i get {+:a}
could i see it with {+:a}
would you add {+:a}
would you mind adding {+:a}
how about adding {+:a}
how about {+:a}
what about {+:a}
what if there was {+:a}
why not add {+:a}
maybe add {+:a}
perhaps add {+:a}
perhaps {+:a} too
maybe {+:a} as well
if possible add {+:a}
i think it needs {+:a}
i think {+:a} would be nice
it would be nice to have {+:a}
it would be better with {+:a}
it'd be cool with {+:a}
imagine it with {+:a}
picture it with {+:a}
same thing, plus {+:a}
that, plus {+:a}
!add {+:a} in the background
!add {+:a} in the foreground
!add {+:a} in the middle
!add {+:a} to the left
!add {+:a} on the right side
!put {+:a} in the middle
!put {+:a} up front
!set {+:a} down somewhere
!set up {+:a}
!position {+:a} in the centre
!draw in {+:a}
!photoshop in {+:a}
!render {+:a} as well
!gimme {+:a}
!give me {+:a} too
!give me one with {+:a}
!find me one with {+:a}
!show me one that has {+:a}
!bring along {+:a}
!throw {+:a} into the scene
!work {+:a} into the picture
!add in {+:a} somewhere
!include {+:a} somewhere in there
!make room for {+:a}
!make space for {+:a}
!add {+:a} while you're at it
!add {+:a} for good measure
{+:a} in the background
{+:a} in the corner
{+:a} joins the scene
{+:a} appears
{+:a} shows up
{+:a} enters the picture
{+:a} is added
{+:a} has been added
{+:a} gets added
{+:a} should be included
{+:a} wouldn't hurt
{+:a} is missing
{+:a} is needed
{+:a} too, please
{+:a}, please
starring {+:a}
with extra {+:bare}
now with extra {+:bare}
and {+:a} on the side
i wish there was {+:a}
if only there were {+:a}
i'd want {+:a} in there
i'm after {+:a} as well
we could use {+:a}
it's lacking {+:a}
the picture could use {+:a}
nothing wrong with adding {+:a}
it would help to have {+:a}
there's room for {+:a}
the scene wants {+:a}
same, but with {+:a} in it
same scene, plus {+:a}
same as before plus {+:a}
identical but with {+:a}
"""

_REMOVE = r"""
!remove {-:the}
!remove {-:the} from it
!remove {-:the} from the picture
!remove {-:the} from the image
!remove {-:the} from the scene
!remove {-:the} please
!also remove {-:the}
!just remove {-:the}
!now remove {-:the}
!take out {-:the}
!take {-:the} out
!take away {-:the}
!take {-:the} away
!take {-:the} off
!take off {-:the}
!get rid of {-:the}
!get {-:the} out of there
!get {-:the} out of the picture
!delete {-:the}
!drop {-:the}
!lose {-:the}
!erase {-:the}
!eliminate {-:the}
!discard {-:the}
!ditch {-:the}
!dump {-:the}
!scrap {-:the}
!cut {-:the}
!cut out {-:the}
!crop out {-:the}
!leave out {-:the}
!leave {-:the} out
!clear away {-:the}
!clear {-:the} away
!wipe out {-:the}
!wipe away {-:the}
!throw away {-:the}
!throw out {-:the}
!toss {-:the}
!kick out {-:the}
!pull out {-:the}
!move {-:the} out of the frame
!hide {-:the}
!make {-:the} disappear
!make {-:the} go away
!make {-:the} vanish
!strip out {-:the}
!omit {-:the}
!exclude {-:the}
!skip {-:the}
!subtract {-:the}
!do away with {-:the}
!clean up {-:the}
!edit out {-:the}
!photoshop out {-:the}
!rub out {-:the}
!white out {-:the}
!pick up {-:the} and take it away
!remove {-:the} completely
!remove {-:the} entirely
!remove all of {-:the}
!remove every {-:bare}
!remove any {-:bare}
!take out every {-:bare}
!get {-:the} off the table
!lift {-:the} out
!let {-:the} go
!try it without {-:the}
!show it without {-:the}
!show me this without {-:the}
!show the same thing without {-:the}
!give me the picture minus {-:the}
!go ahead and remove {-:the}
!please get rid of {-:the}
!let's remove {-:the}
!let's lose {-:the}
!let's get rid of {-:the}
without {-:the}
without {-:bare}
without any {-:bare}
minus {-:the}
but without {-:the}
same but without {-:the}
same picture without {-:the}
same image minus {-:the}
the same without {-:the}
the same minus {-:the}
the same thing without {-:the}
this but without {-:the}
this minus {-:the}
this one without {-:the}
like this but without {-:the}
exactly this without {-:the}
just this without {-:the}
everything except {-:the}
all but {-:the}
{-:the} removed
{-:the} gone
{-:the} taken out
{-:the} deleted
{-:the} should be removed
{-:the} should go
{-:the} must go
{-:the} needs to go
{-:the} needs to be removed
{-:the} must be removed
{-:the} should be gone
{-:the} should be taken out
{-:the} can go
{-:the} can be removed
{-:the} is not needed
{-:the} is unnecessary
{-:the} isn't needed
{-:the} is in the way
{-:the} doesn't belong there
{-:the} does not belong in the picture
{-:the} shouldn't be there
{-:the} should not be in the picture
{-:the} has to be removed
{-:the} ought to go
{-:the} out
{-:the} away
away with {-:the}
out with {-:the}
bye bye {-:the}
goodbye {-:the}
removing {-:the}
removal of {-:the}
with the removal of {-:the}
deleting {-:the}
i want {-:the} removed
i want {-:the} gone
i want {-:the} out
i'd like {-:the} removed
i would like {-:the} taken out
i need {-:the} gone
i need {-:the} removed
we don't need {-:the}
it doesn't need {-:the}
it shouldn't have {-:the}
it should not contain {-:the}
it shouldn't show {-:the}
the picture shouldn't have {-:the}
the image should not contain {-:the}
the scene is better without {-:the}
it would be better without {-:the}
it'd look better without {-:the}
it looks better without {-:the}
better without {-:the}
can you remove {-:the}
could you remove {-:the}
can you take out {-:the}
could you get rid of {-:the}
would you remove {-:the}
would you mind removing {-:the}
can we remove {-:the}
can we lose {-:the}
could we drop {-:the}
can i see it without {-:the}
could i have it without {-:the}
how about removing {-:the}
how about without {-:the}
what about without {-:the}
what if {-:the} was gone
why not remove {-:the}
maybe remove {-:the}
maybe without {-:the}
perhaps lose {-:the}
if possible remove {-:the}
i think {-:the} should go
i think it's better without {-:the}
imagine it without {-:the}
picture it without {-:the}
same thing, minus {-:the}
that, minus {-:the}
!pull {-:the} out
!yank {-:the}
!yank out {-:the}
!paint over {-:the}
!cover up {-:the}
!clear out {-:the}
!clear {-:the}
!wipe {-:the} away
!scrub out {-:the}
!chuck {-:the}
!chuck out {-:the}
!bin {-:the}
!nix {-:the}
!axe {-:the}
!kill {-:the}
!banish {-:the}
!evict {-:the}
!send {-:the} away
!get {-:the} out of here
!clear the scene of {-:the}
!rid the image of {-:the}
!empty the scene of {-:the}
!dispose of {-:the}
!remove {-:the} for me
!take {-:the} out of the shot
!take {-:the} out of the scene
!remove {-:the} out of the picture
!erase {-:the} from the scene
!delete {-:the} from the picture
!crop {-:the} out
!mask out {-:the}
!knock out {-:the}
!drop {-:the} from the shot
!leave {-:the} off
!strip {-:the} away
{-:the} be gone
{-:the} has been removed
{-:the} was removed
{-:the} taken away
{-:the} erased
{-:the} disappears
{-:the} vanishes
{-:the} is gone now
{-:the} should disappear
{-:the} needs removing
{-:the} wants removing
{-:the} can be taken out
{-:the} is to be removed
{-:the} has got to go
{-:the} must leave
{-:the} gets deleted
{-:the} ought to be removed
{-:the} is surplus
{-:the} is extra
{-:the} is redundant
{-:the} has no place here
{-:the} doesn't fit in
the picture minus {-:the}
the scene without {-:the}
the photo without {-:the}
that photo without {-:the}
the same shot minus {-:the}
same again but no {-:bare}
i'd like it without {-:the}
i'd want {-:the} gone
i'd prefer it without {-:the}
i'd love it without {-:the}
we want {-:the} gone
make sure {-:the} is gone
could {-:the} be removed
can {-:the} go
is it possible to remove {-:the}
"""

_NEGATION = r"""
no {-:bare}
no more {-:bare}
no {-:the}
no more of {-:the}
not {-:the}
not with {-:the}
without any more {-:bare}
{-:the} has to go
{-:the} have to go
{-:the} must go away
{-:the} should not be there
{-:the} should not stay
{-:the} can't stay
{-:the} cannot stay
{-:the} is not wanted
{-:the} isn't wanted here
{-:the} is not welcome
{-:the} no longer
{-:the}: no
{-:the}? no
{-:the}, no thanks
{-:the}? get rid of it
there should be no {-:bare}
there should not be {-:a}
there shouldn't be {-:a}
there shouldn't be any {-:bare}
there must not be {-:a}
there can't be {-:a}
there is no {-:bare} anymore
there's no {-:bare} now
there are no more {-:bare}
no longer {-:the}
no longer any {-:bare}
nothing like {-:the}
never {-:the}
none of {-:the}
not a single {-:bare}
zero {-:bare}
i don't want {-:the}
i do not want {-:the}
i don't want {-:a}
i don't want any {-:bare}
i don't want to see {-:the}
i don't need {-:the}
i don't like {-:the}
i hate {-:the}
we don't want {-:the}
nobody wants {-:the}
lose {-:the}, it's ugly
{-:the} is ugly, remove it
{-:the} looks bad, drop it
{-:the} is too much
{-:the}? no way
i'm not a fan of {-:the}
i'd rather not have {-:the}
i would rather not see {-:the}
i'd prefer no {-:bare}
rather without {-:the}
preferably no {-:bare}
ideally without {-:the}
!don't show {-:the}
!do not show {-:the}
!don't include {-:the}
!do not include {-:the}
!don't keep {-:the}
!don't leave {-:the} in
!stop showing {-:the}
!never show {-:the}
!avoid {-:the}
!no {-:bare}, please
!forget {-:the}
!forget about {-:the}
!skip {-:the} this time
!refuse {-:the}
please no {-:bare}
absolutely no {-:bare}
no {-:bare} at all
no {-:bare} whatsoever
not any {-:bare}
no sign of {-:the}
{-:the}? nope
{-:the} - no
nope to {-:the}
!say no to {-:the}
{-:bare}: none
i can't stand {-:the}
i dislike {-:the}
i'm tired of {-:the}
i'm done with {-:the}
enough of {-:the}
enough with {-:the}
i no longer want {-:the}
i won't have {-:the}
we can do without {-:the}
we don't need {-:the} anymore
who needs {-:the}
{-:the} is not needed anymore
!don't let {-:the} stay
!don't put {-:the} in
!don't bother with {-:the}
!don't hold on to {-:the}
!do not save {-:the}
!don't leave {-:the} there
i don't want {-:the} there
i do not want any {-:bare}
let's not have {-:the}
{-:the} shouldn't stay
{-:the} must not remain
{-:the} can't remain
{-:the} isn't staying
{-:the} won't be needed
{-:the} doesn't fit
{-:the} doesn't work here
{-:the} spoils it
{-:the} ruins the picture
{-:the} is distracting
{-:the} clutters the scene
{-:the}: not wanted
{-:the} needs to disappear
not a fan of {-:the}
"""

_REPLACE = r"""
!replace {-1:the} with {+1:a}
!replace {-1:the} by {+1:a}
!replace {-1:the} for {+1:a}
!replace {-:the} with {+:a}
!swap {-1:the} for {+1:a}
!swap {-1:the} with {+1:a}
!swap out {-1:the} for {+1:a}
!swap {-1:the} out for {+1:a}
!switch {-1:the} for {+1:a}
!switch {-1:the} to {+1:a}
!switch out {-1:the} for {+1:a}
!exchange {-1:the} for {+1:a}
!exchange {-1:the} with {+1:a}
!trade {-1:the} for {+1:a}
!trade {-1:the} in for {+1:a}
!substitute {+1:a} for {-1:the}
!substitute {-1:the} with {+1:a}
!sub in {+1:a} for {-1:the}
!change {-1:the} into {+1:a}
!change {-1:the} to {+1:a}
!change {-1:the} for {+1:a}
!turn {-1:the} into {+1:a}
!transform {-1:the} into {+1:a}
!convert {-1:the} into {+1:a}
!make {-1:the} into {+1:a}
!make {-1:the} a {+1:bare} instead
!put {+1:a} where {-1:the} was
!put {+1:a} where {-1:the} is
!put {+1:a} in place of {-1:the}
!put {+1:a} instead of {-1:the}
!place {+1:a} where {-1:the} used to be
!use {+1:a} instead of {-1:the}
!use {+1:a} in place of {-1:the}
!show {+1:a} instead of {-1:the}
!give me {+1:a} instead of {-1:the}
!add {+1:a} instead of {-1:the}
!add {+1:a} in place of {-1:the}
!remove {-1:the} and put {+1:a} there
!remove {-1:the} and put {+1:a} in its place
!take out {-1:the} and put in {+1:a}
!take {-1:the} out and put {+1:a} in
!get rid of {-1:the} and use {+1:a} instead
!lose {-1:the} and add {+1:a} instead
!drop {-1:the} in favour of {+1:a}
!drop {-1:the} in favor of {+1:a}
!ditch {-1:the} for {+1:a}
!let {+1:a} take the place of {-1:the}
!have {+1:a} replace {-1:the}
!let {+1:a} replace {-1:the}
!fill the spot of {-1:the} with {+1:a}
{+1:a} instead of {-1:the}
{+:a} instead of {-:the}
{+1:a} rather than {-1:the}
{+1:a} in place of {-1:the}
{+1:a} in lieu of {-1:the}
{+1:a} in its place
{+1:a} where {-1:the} was
{+1:a} replacing {-1:the}
{+1:a} as a replacement for {-1:the}
{+1:a} not {-1:a}
{+1:a}, not {-1:a}
{+1:a} and not {-1:a}
not {-1:a} but {+1:a}
not {-1:the}, {+1:a}
{-1:the} becomes {+1:a}
{-1:the} should become {+1:a}
{-1:the} should be {+1:a}
{-1:the} should be replaced by {+1:a}
{-1:the} replaced with {+1:a}
{-1:the} replaced by {+1:a}
{-1:the} swapped for {+1:a}
{-1:the} swapped with {+1:a}
{-1:the} turned into {+1:a}
{-1:the} changed to {+1:a}
{-1:the} exchanged for {+1:a}
{-1:the} out, {+1:a} in
{-1:the} goes, {+1:a} comes
{-1:the} is now {+1:a}
{-1:the}? make it {+1:a}
{-1:the} -> {+1:a}
{-1:the} to {+1:a}
from {-1:a} to {+1:a}
same but {+1:a} instead of {-1:the}
same but {+1:a} in place of {-1:the}
same but with {+1:a} instead of {-1:the}
same picture with {+1:a} rather than {-1:the}
the same but {-1:the} is {+1:a}
this but {+1:a} instead of {-1:the}
like this but {+1:a} instead of {-1:the}
replace {-1:the}: {+1:a}
replacement: {+1:a} for {-1:the}
swap: {-1:the} for {+1:a}
i want {+1:a} instead of {-1:the}
i'd rather have {+1:a} than {-1:the}
i would prefer {+1:a} to {-1:the}
i prefer {+1:a} over {-1:the}
i'd like {+1:a} instead of {-1:the}
i want {-1:the} replaced with {+1:a}
i'd like {-1:the} swapped for {+1:a}
i need {+1:a} where {-1:the} is
we need {+1:a} in place of {-1:the}
it should have {+1:a} instead of {-1:the}
it should show {+1:a} rather than {-1:the}
there should be {+1:a} instead of {-1:the}
there should be {+1:a} where {-1:the} is
can you replace {-1:the} with {+1:a}
could you swap {-1:the} for {+1:a}
can we have {+1:a} instead of {-1:the}
could it be {+1:a} instead of {-1:the}
what about {+1:a} instead of {-1:the}
how about {+1:a} instead of {-1:the}
how about swapping {-1:the} for {+1:a}
why not {+1:a} instead of {-1:the}
maybe {+1:a} instead of {-1:the}
better with {+1:a} than {-1:the}
{+1:a} would be better than {-1:the}
{+1:a} should replace {-1:the}
{+1:a} replaces {-1:the}
{+1:a} takes the place of {-1:the}
{+1:a} goes where {-1:the} was
!choose {+1:a} over {-1:the}
!pick {+1:a} over {-1:the}
!go with {+1:a} over {-1:the}
!favour {+1:a} over {-1:the}
!opt for {+1:a} instead of {-1:the}
!switch from {-1:the} to {+1:a}
!change it from {-1:the} to {+1:a}
!upgrade {-1:the} to {+1:a}
!swap in {+1:a} for {-1:the}
!trade out {-1:the} for {+1:a}
!bring in {+1:a} to replace {-1:the}
!add {+1:a} to replace {-1:the}
!use {+1:a} to replace {-1:the}
!put {+1:a} there and lose {-1:the}
!replace {-1:the}, use {+1:a}
!replace {-1:the} using {+1:a}
!exchange {-:the} for {+:a}
!swap {-:the} for {+:a}
!turn {-1:the} in for {+1:a}
!let's do {+1:a} instead of {-1:the}
!do {+1:a} rather than {-1:the}
!out with {-1:the}, in with {+1:a}
!in with {+1:a}, out with {-1:the}
!instead of {-1:the}, put {+1:a}
!in place of {-1:the}, add {+1:a}
!where {-1:the} is, put {+1:a}
instead of {-1:the}, {+1:a}
instead of {-1:the} there should be {+1:a}
out goes {-1:the}, in comes {+1:a}
{+1:a} beats {-1:the}
{+1:a} is preferable to {-1:the}
{+1:a} in exchange for {-1:the}
{+1:a} as opposed to {-1:the}
rather {+1:a} than {-1:the}
{+1:a}! not {-1:the}
we want {+1:a}, not {-1:the}
i like {+1:a} better than {-1:the}
i'd go for {+1:a} rather than {-1:the}
i'd sooner have {+1:a} than {-1:the}
i'd love {+1:a} instead of {-1:the}
i'd like to see {+1:a} in place of {-1:the}
we'd rather see {+1:a} than {-1:the}
{+1:a} would work better than {-1:the}
{+1:a} should take over from {-1:the}
{-1:the} gets replaced with {+1:a}
{-1:the} gives way to {+1:a}
{-1:the} makes room for {+1:a}
{-1:the} is swapped out for {+1:a}
{-1:the} has been replaced by {+1:a}
{-1:the} morphs into {+1:a}
{-1:the} ought to be {+1:a}
{-1:the} would look better as {+1:a}
{-1:the} => {+1:a}
{-1:the} → {+1:a}
{-1:the} into {+1:a}
{-1:the} for {+1:a}, please
{-:the} replaced with {+:a}
"""

_MULTI = r"""
!remove {-:the} and add {+:a}
!remove {-:the}; add {+:a}
!remove {-:the}, then add {+:a}
!add {+:a} and remove {-:the}
!add {+:a} but remove {-:the}
!add {+:a}, remove {-:the}
!add {+:a}; take out {-:the}
!take out {-:the} and add {+:a}
!take out {-:the}, add {+:a}
!take away {-:the}. add {+:a}.
!get rid of {-:the} and put in {+:a}
!get rid of {-:the}, and then add {+:a}
!drop {-:the}, include {+:a}
!delete {-:the} and insert {+:a}
!lose {-:the} and bring in {+:a}
!add {+:a} and delete {-:the}
!add {+:a}, and lose {-:the}
!put in {+:a} and take out {-:the}
!include {+:a} but leave out {-:the}
!erase {-:the} and draw {+:a}
!clear away {-:the} and place {+:a}
!add {+:a} and also remove {-:the}
!first remove {-:the}, then add {+:a}
!first add {+:a}, then remove {-:the}
!add {+:a} after removing {-:the}
!remove {-:the} before adding {+:a}
!add {+:a} while removing {-:the}
!keep everything but remove {-:the} and add {+:a}
!add {+:a} and {+:a}
!remove {-:the} and {-:the}
!add {+:a}, then add {+:a}
!remove {-:the}, then remove {-:the}
!add {+:a}; also add {+:a}
!remove {-:the}; also take out {-:the}
!replace {-1:the} with {+1:a} and add {+:a}
!replace {-1:the} with {+1:a} and remove {-:the}
!swap {-1:the} for {+1:a}, and add {+:a}
!add {+:a} and replace {-1:the} with {+1:a}
!remove {-:the}, and swap {-1:the} for {+1:a}
without {-:the}, with {+:a}
without {-:the} but with {+:a}
with {+:a} but without {-:the}
with {+:a}, without {-:the}
plus {+:a}, minus {-:the}
minus {-:the}, plus {+:a}
no {-:bare}, but {+:a}
no more {-:bare}; add {+:a}
{+:a} added and {-:the} removed
{-:the} removed and {+:a} added
{-:the} gone, {+:a} in
{+:a} in, {-:the} out
{-:the} out and {+:a} in
{-:the} has to go, add {+:a}
{-:the} should go and {+:a} should come in
i want {+:a} but not {-:the}
i want {+:a} and no {-:bare}
i'd like {+:a} without {-:the}
i'd like {+:a} and {+:a}
there should be {+:a} and no {-:bare}
there should be {+:a} but not {-:a}
it needs {+:a} and doesn't need {-:the}
it should have {+:a} and not {-:the}
same but with {+:a} and without {-:the}
same but without {-:the} and with {+:a}
the same minus {-:the} plus {+:a}
this, but with {+:a} and no {-:bare}
can you remove {-:the} and add {+:a}
could you add {+:a} and take out {-:the}
can we have {+:a} without {-:the}
how about adding {+:a} and removing {-:the}
lose {-:the}; gain {+:a}
out: {-:the}. in: {+:a}.
add: {+:a}. remove: {-:the}.
remove: {-:the}; add: {+:a}
+ {+:a} - {-:the}
!remove {-:the} but add {+:a}
!lose {-:the}, add {+:a}
!scrap {-:the} and include {+:a}
!ditch {-:the}; bring {+:a}
!add {+:a} and get rid of {-:the}
!include {+:a}, exclude {-:the}
!put {+:a} in and {-:the} out
!bring in {+:a} and send {-:the} away
!after removing {-:the}, add {+:a}
!remove {-:the}. {+:a} should be added
!add {+:a} then take {-:the} away
!delete {-:the}, delete {-:the}, add {+:a}
!add {+:a}, remove {-:the}, and add {+:a}
!swap {-1:the} for {+1:a} and drop {-:the}
!remove {-:the} and replace {-1:the} with {+1:a}
!add {+:a} and lose {-:the} and {-:the}
!clear {-:the} away and set down {+:a}
!cut {-:the} and paste in {+:a}
once {-:the} is gone, add {+:a}
{+:a} yes, {-:the} no
yes to {+:a}, no to {-:the}
more {+:bare}, no {-:bare}
{+:a} please, and no {-:bare}
{-:the} must go and {+:a} must come
i'd like {+:a}, and {-:the} should go
i want {+:a} added and {-:the} removed
{+:a} and {+:a}, no {-:bare}
take {-:the} out; {+:a} goes in
with {+:a} and without {-:the}
{+:a} in and {-:the} gone
{-:the}? gone. {+:a}? yes
the same minus {-:the}, with {+:a}
{+:a} instead, and without {-:the}
"""

_CONTEXT = r"""
!put {+:a} next to {=:the}
!put {+:a} beside {=:the}
!put {+:a} on {=:the}
!put {+:a} on top of {=:the}
!put {+:a} under {=:the}
!put {+:a} near {=:the}
!put {+:a} behind {=:the}
!put {+:a} in front of {=:the}
!place {+:a} to the left of {=:the}
!place {+:a} to the right of {=:the}
!place {+:a} above {=:the}
!place {+:a} below {=:the}
!place {+:a} between {=:the} and {=:the}
!add {+:a} next to {=:the}
!add {+:a} beside {=:the}
!add {+:a} near {=:the}
!add {+:a} on {=:the}
!add {+:a} under {=:the}
!add {+:a} inside {=:the}
!add {+:a} on the other side of {=:the}
!add {+:a} by {=:the}
!add {+:a} to go with {=:the}
!add {+:a} to match {=:the}
!add {+:a} for {=:the}
!keep {=:the} and add {+:a}
!keep {=:the} but add {+:a}
!keep {=:the}, add {+:a}
!keep {=:the} but remove {-:the}
!keep {=:the} and take out {-:the}
!keep {=:the}; lose {-:the}
!leave {=:the} and remove {-:the}
!leave {=:the} where it is and take out {-:the}
!leave {=:the} alone but add {+:a}
!don't touch {=:the}, just add {+:a}
!don't move {=:the} but remove {-:the}
!don't remove {=:the}, remove {-:the}
!don't remove {=:the} but add {+:a}
!do not remove {=:the}; remove {-:the} instead
!don't add {=:a}, add {+:a}
!remove {-:the} next to {=:the}
!remove {-:the} near {=:the}
!remove {-:the} on {=:the}
!remove {-:the} from {=:the}
!take {-:the} off {=:the}
!take {-:the} out of {=:the}
!remove {-:the} but keep {=:the}
!remove {-:the} and leave {=:the}
!remove {-:the}, keep {=:the}
!get rid of {-:the} but not {=:the}
!delete {-:the} and keep {=:the} as it is
!add {+:a} and keep {=:the}
!add {+:a} but keep {=:the}
!add {+:a}, keeping {=:the}
!replace {-1:the} next to {=:the} with {+1:a}
!swap {-1:the} on {=:the} for {+1:a}
!move {=:the} and add {+:a}
!move {=:the} to the left and add {+:a}
!move {=:the} a bit and remove {-:the}
!make {=:the} bigger and add {+:a}
!make {=:the} smaller and remove {-:the}
!give {=:the} {+:a}
!feed {=:the} {+:a}
!let {=:the} hold {+:a}
!have {=:the} hold {+:a}
!put {+:a} in {=:the}
!fill {=:the} with {+:a}
!hang {+:a} on {=:the}
!lean {+:a} against {=:the}
{+:a} next to {=:the}
{+:a} beside {=:the}
{+:a} on {=:the}
{+:a} on top of {=:the}
{+:a} in front of {=:the}
{+:a} behind {=:the}
{+:a} near {=:the}
{+:a} under {=:the}
{+:a} by {=:the}
with {+:a} next to {=:the}
with {+:a} on {=:the}
with {+:a} beside {=:the}
same but with {+:a} next to {=:the}
keep {=:the}, lose {-:the}
keep {=:the}, add {+:a}
{=:the} stays, {-:the} goes
{=:the} stays and {+:a} joins
{=:the} can stay but {-:the} must go
{=:the} is fine, but remove {-:the}
{=:the} is fine, just add {+:a}
{=:the} is good, add {+:a} too
{=:the} stays where it is; add {+:a}
{=:the} should stay, {-:the} should go
i like {=:the}, but remove {-:the}
i like {=:the}; add {+:a}
i love {=:the} but not {-:the}
leave {=:the}, take {-:the}
without {-:the} next to {=:the}
without {-:the} but keeping {=:the}
no {-:bare} near {=:the}
{-:the} on {=:the} has to go
{-:the} next to {=:the} should go
{-:the} beside {=:the} must be removed
{+:a} should sit next to {=:the}
{+:a} should be on {=:the}
there should be {+:a} next to {=:the}
there should be {+:a} on {=:the}
there should be {+:a} behind {=:the}
i want {+:a} next to {=:the}
i want {+:a} near {=:the}
i'd like {+:a} on {=:the}
can you put {+:a} next to {=:the}
could you place {+:a} beside {=:the}
can you remove {-:the} but keep {=:the}
could you add {+:a} near {=:the}
{=:the} needs {+:a}
{=:the} needs {+:a} next to it
{=:the} should have {+:a}
{=:the} looks lonely, add {+:a}
{=:the} looks empty without {+:a}
{=:the} is hidden by {-:the}, remove it
{=:the} is too small
{=:the} should be bigger
make {=:the} red
make {=:the} bigger
move {=:the} to the left
keep {=:the}
keep {=:the} as it is
leave {=:the} alone
don't touch {=:the}
do not remove {=:the}
don't remove {=:the}
don't add {=:a}
do not add {=:a}
don't take out {=:the}
keep {=:the} and {=:the}
{=:the} stays
{=:the} should stay
!remove {-:the} but not {=:the}
!delete {-:the}, not {=:the}
!take out {-:the} and not {=:the}
!erase {-:the} but leave {=:the}
!remove only {-:the}, not {=:the}
!lose {-:the} but not {=:the}
!drop {-:the} but spare {=:the}
!remove {-:the} and spare {=:the}
!clear {-:the} but keep {=:the} in place
!delete {-:the} while keeping {=:the}
!bring {+:a} for {=:the}
!get {+:a} for {=:the}
!put out {+:a} for {=:the}
!add {+:a} for {=:the} to use
!add {+:a} to keep {=:the} company
!add {+:a} so {=:the} isn't alone
!add {+:a} to {=:the}
!attach {+:a} to {=:the}
!stick {+:a} onto {=:the}
!put {+:a} into {=:the}
!add {+:a} around {=:the}
!surround {=:the} with {+:a}
!cover {=:the} with {+:a}
!decorate {=:the} with {+:a}
!top {=:the} with {+:a}
!let {=:the} stay
!leave {=:the} in place
!move {=:the} closer to {=:the}
!turn {=:the} around
!rotate {=:the}
!center {=:the}
!shift {=:the} to the right
!make {=:the} blue
!zoom in on {=:the}
!focus on {=:the}
!flip {=:the}
!push {=:the} to the back
!bring {=:the} forward
!put {=:the} on the right
!swap the positions of {=:the} and {=:the}
!move {=:the} next to {=:the}
!put {=:the} on top of {=:the}
!remove {-:the} from behind {=:the}
!take {-:the} away from {=:the}
!clear {-:the} off {=:the}
!remove {-:the} that is on {=:the}
!remove {-:the} sitting on {=:the}
!remove {-:the} in front of {=:the}
!remove {-:the} between {=:the} and {=:the}
{+:a} for {=:the}
{=:the} stays put
{=:the} remains
{=:the} can remain
{=:the} must stay
{=:the} stays as is
{=:the} should remain where it is
{=:the} is staying
{=:the} remains untouched
nothing happens to {=:the}
{=:the} should be left alone
{=:the} is okay as it is
{=:the} should face left
{=:the} with {+:a} on it
{=:the} wearing {+:a}
{=:the} holding {+:a}
{=:the} without {-:the} on it
{=:the} is great but {-:the} has to go
i'm happy with {=:the} but remove {-:the}
{=:the} is nice; {-:the} is not
{=:the} yes, but {-:the} no
!remove {-:the} but save {=:the}
!delete {-:the} and preserve {=:the}
!take out {-:the} but protect {=:the}
!get rid of {-:the} and retain {=:the}
!lose {-:the} but hold on to {=:the}
!drop {-:the}, hang on to {=:the}
!erase {-:the} and leave {=:the} be
!remove {-:the} and let {=:the} be
!clear away {-:the} but leave {=:the} standing
!remove {-:the}, but {=:the} stays
!delete {-:the} yet keep {=:the}
!remove {-:the} though not {=:the}
!take away {-:the}, not {=:the}
!ditch {-:the} and leave {=:the} untouched
!remove {-:the} without touching {=:the}
!preserve {=:the}
!protect {=:the}
!retain {=:the}
!save {=:the}
!hold on to {=:the}
!leave {=:the} be
!leave {=:the} as is
!leave {=:the} there
!leave {=:the} standing
!let {=:the} be
!add {+:a} but leave {=:the} as is
!add {+:a} and preserve {=:the}
{=:the} is safe, {-:the} is not
{=:the} survives, {-:the} does not
i like {=:the}, not {-:the}
i adore {=:the} but hate {-:the}
"""

_NONE = r"""
make it black and white
the same in grayscale
a monochrome version
a sketch of this
make it a line drawing
draw this as a pencil sketch
the same as a sketch
turn it into pixel art
a pixelated version
the same as 8-bit pixel art
pixel art of this
make it a colour photo
the same in full colour
in colour please
a colour version of this
remove the colour
remove the colours
take the colour out
drain the colour
desaturate it
make it brighter
make it darker
more contrast please
zoom in
zoom out
crop it tighter
rotate it a bit
flip it horizontally
make it bigger
make it smaller
same thing but at night
same but in daylight
the same from a different angle
keep everything else the same
keep everything as it is
don't change anything
do not change anything else
leave everything else alone
nothing else changes
no other changes
same but nicer
make it look better
make it more colourful
make it look old
make it look like a painting
as a watercolour painting
as an oil painting
in cartoon style
in the style of a comic
make it sharper
less blurry please
fix the lighting
remove the background
blur the background
a different background
change the background to white
move everything to the left
spread things out a bit
put everything closer together
make it symmetric
center it
the same picture
the same but different
something like this
similar to this
more like this
this again
again please
same
yes
no
ok
thanks
hello
never mind
undo that
go back
try again
i like it
looks good
perfect
this is great
no changes
nothing
whatever
hmm
what is this
who made this
how much does it cost
where is this
the weather is nice today
my cat is sleeping
i had lunch
see you tomorrow
can you help me
i don't know
tell me a joke
is this a photo
what do you see
describe the picture
how many things are there
count the objects
which one is bigger
blur the edges
sharpen the image
make the background darker
brighten the scene
more saturation
less saturation
less noise
more light please
more brightness
less contrast
more colour
a bit more contrast
add some contrast
add more light
add a vintage filter
add a sepia tone
add some grain
make the sky brighter
make the colours warmer
a softer look
darken the background
lighten the shadows
remove the noise
remove the blur
take away the glare
get rid of the grain
turn down the saturation
a cleaner version
a brighter version of this
as a black and white photo
in sepia
in the style of an old photo
like a postcard
as seen from above
same but from further away
closer up
a wider shot
"""

_FOREIGN = r"""
ajoute un chien
ajoute une tasse et enlève le chat
enlève la chaise
supprime le livre s'il te plaît
remplace le chat par un chien
sans la lampe
mets une pomme à côté du vase
füge einen hund hinzu
entferne die katze
ohne den stuhl
ersetze die tasse durch ein glas
bitte die lampe entfernen
añade un perro
quita el gato
sin la silla
reemplaza la taza por un vaso
pon una manzana junto al libro
aggiungi un cane
togli il gatto
senza la sedia
sostituisci la tazza con un bicchiere
adicione um cachorro
remova o gato
sem a cadeira
voeg een hond toe
verwijder de kat
lägg till en hund
ta bort katten
dodaj psa
usuń kota
köpek ekle
kediyi kaldır
добавь собаку
убери кошку
без стула
加一只狗
去掉猫
把杯子换成玻璃杯
犬を追加して
猫を消して
개를 추가해
고양이를 지워
أضف كلبا
أزل القطة
הוסף כלב
कुत्ता जोड़ो
thêm một con chó
tambahkan anjing
ongeza mbwa
"""

_SECTIONS = {"add": _ADD, "remove": _REMOVE, "replace": _REPLACE, "multi": _MULTI, "context": _CONTEXT,
             "negation": _NEGATION, "none": _NONE, "foreign": _FOREIGN}


@dataclass(frozen=True)
class Template:
    kind: str  # one of KINDS
    pattern: str  # text with slots, e.g. "replace {-1:the} with {+1:a}"
    imperative: bool  # accepts politeness prefixes ("could you ...")


def parse_block(kind: str, block: str) -> list[Template]:
    """The patterns of one block of lines ("!" marks an imperative), blank lines skipped."""
    out = []
    for line in block.strip().splitlines():
        line = line.strip()
        imperative = line.startswith("!")
        pattern = line[1:] if imperative else line
        if pattern:
            out.append(Template(kind, pattern, imperative))
    return out


def all_templates() -> list[Template]:
    """Every hand-written pattern, deduplicated, in file order."""
    out, seen = [], set()
    for kind, block in _SECTIONS.items():
        for template in parse_block(kind, block):
            if template.pattern not in seen:
                seen.add(template.pattern)
                out.append(template)
    return out


def _bucket(text: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_patterns(templates: list[Template], val_fraction: float = 0.15, seed: int = 0) -> tuple[list[Template], list[Template]]:
    """(train, validation) by a seeded hash of each pattern: stable when patterns are added elsewhere."""
    train = [t for t in templates if _bucket(t.pattern, seed) >= val_fraction]
    val = [t for t in templates if _bucket(t.pattern, seed) < val_fraction]
    return train, val


# Other languages, built from a small grammar: "{n}" is a noun phrase of that language. These sentences must give
# no span at all (the tagger reads English); patterns and nouns are split into train/validation like the rest.
FOREIGN_GRAMMAR: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fr": (("ajoute {n}", "enlève {n}", "supprime {n}", "sans {n}", "remplace {n} par {n}", "mets {n} à côté de {n}",
            "je veux {n}", "il faut {n}", "retire {n} s'il te plaît", "pas de {n}", "avec {n} en plus", "change {n} en {n}"),
           ("un chien", "le chat", "une chaise", "la lampe", "un livre", "la tasse", "une pomme", "le vélo", "un parapluie",
            "la voiture", "un oiseau", "le gâteau", "une fourchette et un couteau", "la fenêtre", "un ballon")),
    "de": (("füge {n} hinzu", "entferne {n}", "ohne {n}", "ersetze {n} durch {n}", "stell {n} neben {n}", "ich will {n}",
            "nimm {n} weg", "kein {n} mehr", "mit {n}", "lösche {n} bitte", "tausche {n} gegen {n}", "mach {n} weg"),
           ("einen hund", "die katze", "den stuhl", "die lampe", "ein buch", "die tasse", "einen apfel", "das fahrrad",
            "einen regenschirm", "das auto", "einen vogel", "den kuchen", "messer und gabel", "das fenster", "einen ball")),
    "es": (("añade {n}", "quita {n}", "sin {n}", "reemplaza {n} por {n}", "pon {n} junto a {n}", "quiero {n}",
            "elimina {n}", "no más {n}", "con {n}", "borra {n} por favor", "cambia {n} por {n}", "agrega {n} también"),
           ("un perro", "el gato", "la silla", "la lámpara", "un libro", "la taza", "una manzana", "la bicicleta",
            "un paraguas", "el coche", "un pájaro", "el pastel", "tenedor y cuchillo", "la ventana", "una pelota")),
    "it": (("aggiungi {n}", "togli {n}", "senza {n}", "sostituisci {n} con {n}", "metti {n} accanto a {n}", "voglio {n}",
            "rimuovi {n}", "niente più {n}", "con {n}", "elimina {n} per favore", "cambia {n} con {n}", "leva {n}"),
           ("un cane", "il gatto", "la sedia", "la lampada", "un libro", "la tazza", "una mela", "la bicicletta",
            "un ombrello", "la macchina", "un uccello", "la torta", "forchetta e coltello", "la finestra", "una palla")),
    "pt": (("adicione {n}", "remova {n}", "sem {n}", "substitua {n} por {n}", "coloque {n} ao lado de {n}", "quero {n}",
            "tire {n}", "chega de {n}", "com {n}", "apague {n} por favor", "troque {n} por {n}", "acrescente {n}"),
           ("um cachorro", "o gato", "a cadeira", "a lâmpada", "um livro", "a xícara", "uma maçã", "a bicicleta",
            "um guarda-chuva", "o carro", "um pássaro", "o bolo", "garfo e faca", "a janela", "uma bola")),
    "nl": (("voeg {n} toe", "verwijder {n}", "zonder {n}", "vervang {n} door {n}", "zet {n} naast {n}", "ik wil {n}",
            "haal {n} weg", "geen {n} meer", "met {n}", "wis {n} alsjeblieft"),
           ("een hond", "de kat", "de stoel", "de lamp", "een boek", "de kop", "een appel", "de fiets", "een paraplu",
            "de auto", "een vogel", "de taart", "mes en vork", "het raam")),
    "sv": (("lägg till {n}", "ta bort {n}", "utan {n}", "byt {n} mot {n}", "jag vill ha {n}", "inga fler {n}", "med {n}"),
           ("en hund", "katten", "stolen", "lampan", "en bok", "koppen", "ett äpple", "cykeln", "ett paraply", "bilen")),
    "pl": (("dodaj {n}", "usuń {n}", "bez {n}", "zamień {n} na {n}", "chcę {n}", "postaw {n} obok {n}", "z {n}"),
           ("psa", "kota", "krzesło", "lampę", "książkę", "kubek", "jabłko", "rower", "parasol", "samochód", "ptaka")),
    "tr": (("{n} ekle", "{n} kaldır", "{n} olmadan", "{n} yerine {n} koy", "{n} istiyorum", "{n} sil lütfen"),
           ("köpek", "kedi", "sandalye", "lamba", "kitap", "fincan", "elma", "bisiklet", "şemsiye", "araba", "kuş")),
    "ro": (("adaugă {n}", "scoate {n}", "fără {n}", "înlocuiește {n} cu {n}", "vreau {n}", "cu {n}"),
           ("un câine", "pisica", "scaunul", "lampa", "o carte", "cana", "un măr", "bicicleta", "o umbrelă", "mașina")),
    "id": (("tambahkan {n}", "hapus {n}", "tanpa {n}", "ganti {n} dengan {n}", "saya mau {n}", "buang {n}"),
           ("anjing", "kucing", "kursi", "lampu", "buku", "cangkir", "apel", "sepeda", "payung", "mobil", "burung")),
    "ru": (("добавь {n}", "убери {n}", "без {n}", "замени {n} на {n}", "я хочу {n}", "поставь {n} рядом с {n}"),
           ("собаку", "кошку", "стул", "лампу", "книгу", "чашку", "яблоко", "велосипед", "зонт", "машину", "птицу")),
}


def split_foreign(val_fraction: float = 0.15, seed: int = 0) -> tuple[dict, dict]:
    """(train, validation) grammars: each language's patterns and nouns split by a seeded hash (a language keeps at
    least one pattern and one noun on each side)."""
    train, val = {}, {}
    for lang, (patterns, nouns) in FOREIGN_GRAMMAR.items():
        sides = []
        for items in (patterns, nouns):
            v = [x for x in items if _bucket(lang + x, seed) < val_fraction] or [items[-1]]
            t = [x for x in items if x not in v]
            sides.append((tuple(t), tuple(v)))
        train[lang] = (sides[0][0], sides[1][0])
        val[lang] = (sides[0][1], sides[1][1])
    return train, val
